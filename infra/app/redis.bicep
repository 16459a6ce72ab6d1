// Azure Managed Redis for the content store, leaderboard and watermarks.
// Default: Entra ID only (access keys off); the app signs in as its user-assigned identity (AZURE_CLIENT_ID)
// and REDIS_URL carries no secret. redisUseAccessKeys = true is the fallback for clients without Entra ID
// support: the key then lives only in Key Vault (secret redis-url) and REDIS_URL references it.
param name string
param location string
param tags object
param skuName string
param useAccessKeys bool
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string
param keyVaultName string
param workspaceId string

resource cluster 'Microsoft.Cache/redisEnterprise@2025-07-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
  }
  properties: {
    minimumTlsVersion: '1.2'
    highAvailability: 'Enabled'
    publicNetworkAccess: publicNetworkAccess
  }
}

resource database 'Microsoft.Cache/redisEnterprise/databases@2025-07-01' = {
  parent: cluster
  name: 'default'
  properties: {
    clientProtocol: 'Encrypted' // TLS only
    port: 10000
    clusteringPolicy: 'NoCluster' // one endpoint; multi-key Lua scripts work without hash tags
    evictionPolicy: 'NoEviction' // watermarks must never be evicted
    accessKeysAuthentication: useAccessKeys ? 'Enabled' : 'Disabled'
    persistence: {
      aofEnabled: true
      aofFrequency: '1s'
    }
  }
}

module urlSecret 'keyvault-secret.bicep' = if (useAccessKeys) {
  name: 'redis-url-secret'
  params: {
    keyVaultName: keyVaultName
    name: 'redis-url'
    value: 'rediss://:${database.listKeys().primaryKey}@${cluster.properties.hostName}:10000/0'
    contentType: 'text/plain; Redis URL with access key'
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: cluster
  properties: {
    workspaceId: workspaceId
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output id string = cluster.id
output name string = cluster.name
output host string = cluster.properties.hostName
// Entra ID mode: no credentials in the URL; the client authenticates with a token for AZURE_CLIENT_ID.
output url string = 'rediss://${cluster.properties.hostName}:10000/0'
output urlSecretName string = useAccessKeys ? 'redis-url' : ''

// Optional VNet: Flex Consumption integration subnet, private endpoints subnet, Container Apps subnet.
param name string
param location string
param tags object
param addressPrefix string
@description('Address prefixes of the subnets: function, privateEndpoints, containerApps (at least /27 each).')
param subnetPrefixes object

// Flex Consumption VNet integration needs a subnet delegated to Microsoft.App/environments
// (not Microsoft.Web/serverFarms, which is for the other plans).
resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'function'
        properties: {
          addressPrefix: subnetPrefixes.function
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
          privateEndpointNetworkPolicies: 'Disabled'
          privateLinkServiceNetworkPolicies: 'Enabled'
        }
      }
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: subnetPrefixes.privateEndpoints
          privateEndpointNetworkPolicies: 'Disabled'
          privateLinkServiceNetworkPolicies: 'Enabled'
        }
      }
      {
        name: 'container-apps'
        properties: {
          addressPrefix: subnetPrefixes.containerApps
          delegations: [
            {
              name: 'container-apps'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
    ]
  }
}

output id string = vnet.id
output name string = vnet.name
output functionSubnetId string = '${vnet.id}/subnets/function'
output privateEndpointSubnetId string = '${vnet.id}/subnets/private-endpoints'
output containerAppsSubnetId string = '${vnet.id}/subnets/container-apps'
